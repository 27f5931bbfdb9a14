"""ProbeLab: touch a model to test what its maps suggest — the activation-patching map (layer ×
position, layer × head) with click-through to a site, ablating, patching or steering a head
picked on the attention grid, attribution of the output to the input tokens, and the logit
lens — of any source's snapshots (a TrainingLab, a Recorder, a run directory, a model on your
inputs, a Hugging Face model folder with texts), with the step slider of the lab protocol
(:mod:`widgets._lab`).

Every view is one call of :mod:`explorer.interventions` drawn by :mod:`widgets.figures.probe`:
``patching_sweep`` → ``patching_figure``, ``ablate``/``patch``/``steer`` →
``output_change_figure``, ``attribute`` → ``attribution_tokens_figure``, ``logit_lens`` →
``logit_lens_figure``.

What is measured (``metric``) and on what:
- ``clean`` inputs (default: the source's test sequences, or its texts) and ``corrupted`` ones
  of the same shape (default: the clean rows shifted by one, so each row is paired with
  another sequence);
- ``answer``/``wrong`` token ids (one, or one per row) at ``position``; when no answer is given
  and the source's task scores tokens (targets (B, T), −100 elsewhere), the metric is the loss
  on those targets; otherwise the logit difference between what the clean run and what the
  corrupted run predict at ``position``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from explorer import interventions as iv
from explorer.interventions.patch import align_pair
from explorer.interventions.run import batch_size, map_batch, prepare_inputs, token_strings
from explorer.models import capture
from widgets._lab import Lab
from widgets.canvas import HeatmapGrid
from widgets.figures import probe as figs

__all__ = ["ProbeLab"]

VIEWS = ("patching", "intervention", "attribution", "logit_lens")
SWEEPS = {  # menu label → (site, by)
    "residual stream (layer × position)": ("resid_pre", "position"),
    "attention output (layer × position)": ("attn_out", "position"),
    "MLP output (layer × position)": ("mlp_out", "position"),
    "heads (layer × head)": ("z", "head"),
    "heads × position": ("z", "head_position"),
}
ACTIONS = {"zero ablation": "zero", "mean ablation": "mean", "resample ablation": "resample",
           "patch from clean": "patch", "steer to clean": "steer"}  # fmt: skip
METHODS = {"integrated gradients": "integrated_gradients", "gradient × input": "gradient_x_input",
           "saliency": "saliency", "occlusion": "occlusion"}  # fmt: skip
_METRIC_LABELS = {"logit_diff": "logit difference", "probability": "probability",
                  "loss": "loss", "accuracy": "accuracy"}  # fmt: skip
_WRAP = W.Layout(flex_flow="row wrap", align_items="flex-start")


def _replace(widget: go.FigureWidget, fig: go.Figure) -> None:
    with widget.batch_update():
        widget.data = ()
        widget.add_traces(list(fig.data))
        widget.layout = fig.layout


class ProbeLab(Lab):
    """Interventions on the model of a source (see the module docstring).

    ``source``: a TrainingLab, Recorder, run directory, ``(model, inputs)`` or
    ``(hf_folder_or_model, texts)``; ``clean``/``corrupted``: token ids (B, T) or texts;
    ``answer``/``wrong``/``position``/``metric``: the read-out (see the module docstring);
    ``align``: ``"left"``/``"right"`` pairs clean and corrupted inputs of different lengths
    (see ``iv.patch``); ``n_inputs``: rows taken from the source's test split; ``vocab`` names
    explorer's tokens (default: the task's vocabulary). Selection: :attr:`site` (patching map
    click), :attr:`layer`/:attr:`head` (attention grid click), :attr:`row` (the input shown).
    """

    kind = "probe"

    def __init__(
        self,
        source: Any = None,
        *,
        clean: Any = None,
        corrupted: Any = None,
        answer: Any = None,
        wrong: Any = None,
        position: int = -1,
        align: str | None = None,
        metric: str | None = None,
        n_inputs: int = 32,
        vocab: Sequence[str] | None = None,
        title: str = "Probe",
        out_dir: str | Path = "exports",
        min_interval_s: float = 0.25,
    ) -> None:
        super().__init__(out_dir=out_dir, min_interval_s=min_interval_s)
        if metric is not None and metric not in iv.METRICS:
            raise ValueError(f"metric must be one of {iv.METRICS} or None, got {metric!r}")
        if not (isinstance(n_inputs, int) and n_inputs >= 1):
            raise ValueError(f"n_inputs must be an integer >= 1, got {n_inputs!r}")
        self._given = dict(clean=clean, corrupted=corrupted, answer=answer, wrong=wrong)
        self._position, self._metric_name, self.n_inputs = int(position), metric, n_inputs
        self._align = align
        self._vocab = None if vocab is None else [str(v) for v in vocab]
        self.model: torch.nn.Module | None = None
        self.step: int | None = None
        self.layer = self.head = self.row = 0
        self.site: dict[str, int] | None = None
        self._clean: Any = None
        self._corrupted: Any = None
        self._targets: torch.Tensor | None = None
        self.metric: str = metric or "logit_diff"
        self._read_args: dict[str, Any] = {}
        self._display_pos = torch.zeros(0, dtype=torch.long)
        self._sweep: pd.DataFrame | None = None
        self._effect: pd.DataFrame | None = None
        self._attribution: iv.Attribution | None = None
        self._lens: pd.DataFrame | None = None
        self._syncing = False

        self.title_html = W.HTML(f"<b>{html.escape(title)}</b>")
        self.row_select = W.Dropdown(description="input", options=[("0", 0)],
                                     layout=W.Layout(width="420px"))  # fmt: skip
        self.row_select.add_class("xp-probe-row")
        # patching
        self.sweep_select = W.Dropdown(options=list(SWEEPS), description="patch",
                                       layout=W.Layout(width="380px"))  # fmt: skip
        self.sweep_select.add_class("xp-probe-sweep")
        self.patch_grid = HeatmapGrid(tile_px=420, aspect="auto", tile_height=220, colorscale="rdbu",
                                      colorbar_title="restored fraction", mark_cell=True)  # fmt: skip
        self.patch_grid.add_class("xp-probe-patching")
        self.site_change = go.FigureWidget()
        self.site_change.add_class("xp-probe-site-change")
        # intervene
        self.head_grid = HeatmapGrid(tile_px=56, x_title="key", y_title="query",
                                     colorbar_title="attention weight")  # fmt: skip
        self.head_grid.add_class("xp-probe-heads")
        self.action = W.ToggleButtons(options=list(ACTIONS), description="do",
                                      style={"button_width": "160px"})  # fmt: skip
        self.action.add_class("xp-probe-action")
        self.scale = W.FloatSlider(value=1.0, min=-4.0, max=8.0, step=0.5, description="scale",
                                   continuous_update=False, layout=W.Layout(display="none"))  # fmt: skip
        self.scale.add_class("xp-probe-scale")
        self.effect_html = W.HTML()
        self.effect_html.add_class("xp-probe-effect")
        self.change = go.FigureWidget()
        self.change.add_class("xp-probe-change")
        # attribution
        self.method = W.ToggleButtons(options=list(METHODS), description="method",
                                      style={"button_width": "180px"})  # fmt: skip
        self.method.add_class("xp-probe-method")
        self.attribution_fig = go.FigureWidget()
        self.attribution_fig.add_class("xp-probe-attribution")
        # logit lens
        self.lens_color = W.ToggleButtons(options=[("top token", "top"), ("target", "target")],
                                          description="colour")  # fmt: skip
        self.lens_color.add_class("xp-probe-lens-color")
        self.lens_fig = go.FigureWidget()
        self.lens_fig.add_class("xp-probe-lens")

        self.tabs = W.Tab(
            children=[
                W.VBox([self.sweep_select, W.HBox([self.patch_grid, self.site_change], layout=_WRAP)]),
                W.VBox([self.action, self.scale, W.HBox([self.head_grid, W.VBox([self.effect_html, self.change])],
                                            layout=_WRAP)]),
                W.VBox([self.method, self.attribution_fig]),
                W.VBox([self.lens_color, self.lens_fig]),
            ],
            titles=["Patching", "Intervene", "Attribution", "Logit lens"],
        )  # fmt: skip
        self._set_body(W.HBox([self.title_html, self.row_select], layout=_WRAP), self.tabs)

        self.sweep_select.observe(lambda _c: self._redraw("patching", reset=True), "value")
        self.patch_grid.observe(self._on_patch_cell, "clicked_cell")
        self.head_grid.observe(self._on_head_tile, "selected")
        self.action.observe(self._on_action, "value")
        self.scale.observe(lambda _c: self._redraw("intervention", reset=True), "value")
        self.method.observe(lambda _c: self._redraw("attribution", reset=True), "value")
        self.lens_color.observe(lambda _c: self._redraw("logit_lens"), "value")
        self.row_select.observe(self._on_row, "value")
        self.tabs.observe(lambda _c: self._guard(self._draw_tab), "selected_index")
        if source is not None:
            self.follow(source)
        self._refresh_export_views()

    # ------------------------------------------------------------ data in

    def _on_follow(self, source: Any) -> None:
        self.model, self.step, self._clean = None, None, None

    def _show_snapshot(self, snap: Any) -> None:
        src = self._source
        model = src.model_at(int(snap.step)).eval()
        try:
            iv.resolve_site(model, "blocks.0.attn.hook_z")
        except ValueError:
            raise ValueError(
                f"ProbeLab probes transformers: {type(model).__name__} has no attention heads "
                "(sites blocks.<layer>.attn.hook_z). Give explorer's Transformer or a Hugging "
                "Face transformer"
            ) from None
        with self.busy(f"probing the model at step {snap.step}…"):
            self.model, self.step = model, int(snap.step)
            if self._clean is None:
                self._set_inputs(src)
            self._derive_metric()
            self._sweep = self._effect = self._attribution = self._lens = None
            self._draw_heads()
            self._draw_tab()
        self._refresh_export_views()

    def _source_inputs(self, src: Any) -> tuple[Any, Any]:
        """Clean inputs and the task's targets for them (or None)."""
        texts = getattr(src, "texts", None)
        if texts:
            return list(texts), None
        task = getattr(src, "task", None)
        x = getattr(task, "x_test", None)
        if x is None:
            x = getattr(src, "inputs", None)
        if x is None:
            raise ValueError(
                "this source has no inputs to probe: give clean=... (token ids or texts)"
            )
        x = torch.as_tensor(x)[: self.n_inputs]
        y = getattr(task, "y_test", None)
        y = None if y is None else torch.as_tensor(y)[: self.n_inputs]
        if y is not None and (y.shape != x.shape or y.is_floating_point()):
            y = None  # not per-token targets
        return x, y

    def _set_inputs(self, src: Any) -> None:
        given = self._given
        model = self.model
        assert model is not None
        if given["clean"] is not None:
            clean, targets = given["clean"], None
        else:
            clean, targets = self._source_inputs(src)
        clean = prepare_inputs(model, clean)
        if given["corrupted"] is not None:
            clean, corrupted = align_pair(model, clean, given["corrupted"], self._align)
        else:  # each row paired with the next one
            corrupted = map_batch(clean, lambda t: t.roll(1, 0))
        self._clean, self._corrupted, self._targets = clean, corrupted, targets
        self.row = min(self.row, batch_size(clean) - 1)
        self._sync_rows()

    def _token_ids(self, batch: Any) -> torch.Tensor:
        t = batch["input_ids"] if isinstance(batch, dict) else batch
        return torch.as_tensor(t)

    def _tokens(self, ids: Sequence[int]) -> list[str]:
        vocab = self._vocab
        if vocab is None:
            meta = getattr(getattr(self._source, "task", None), "meta", None) or {}
            vocab = meta.get("vocab")
        assert self.model is not None
        return token_strings(self.model, ids, vocab)

    def _sync_rows(self) -> None:
        ids = self._token_ids(self._clean)
        sep = "" if getattr(self.model, "tokenizer", None) is not None else " "  # subwords
        options = []
        for i in range(min(len(ids), 200)):
            text = sep.join(self._tokens(ids[i].tolist()))
            options.append((f"{i}: {text[:60]}{'…' if len(text) > 60 else ''}", i))
        self._syncing = True
        try:
            self.row_select.options = options
            self.row_select.value = self.row
        finally:
            self._syncing = False

    def _derive_metric(self) -> None:
        """The read-out's keywords for the current model (see the module docstring)."""
        model, g = self.model, self._given
        assert model is not None
        clean, corrupted = self._clean, self._corrupted
        n = batch_size(clean)
        pos = torch.full((n,), self._position)
        mask = clean.get("attention_mask") if isinstance(clean, dict) else None
        if mask is not None and self._position == -1:  # texts: each row's last real token
            pos = mask.sum(1) - 1
        if g["answer"] is not None:
            name = self._metric_name or ("logit_diff" if g["wrong"] is not None else "probability")
            self._read_args = dict(answer=g["answer"], wrong=g["wrong"], position=pos)
        elif self._targets is not None and self._metric_name in (None, "loss", "accuracy"):
            name = self._metric_name or "loss"
            scored = self._targets != -100
            last = torch.where(scored, torch.arange(scored.shape[1]), -1).max(1).values
            pos = torch.where(last >= 0, last, pos)
            self._read_args = dict(targets=self._targets, position=pos)
        else:
            name = self._metric_name or "logit_diff"
            with torch.no_grad():
                a = iv.logits_of(iv.run_with_hooks(model, clean).output)
                b = iv.logits_of(iv.run_with_hooks(model, corrupted).output)
            at = pos % a.shape[1]
            rows = torch.arange(n)
            answer, wrong = a[rows, at].argmax(-1), b[rows, at].argmax(-1)
            self._read_args = dict(answer=answer, wrong=wrong, position=pos)
        self.metric, self._display_pos = name, pos

    # ------------------------------------------------------------ selection

    @property
    def selection(self) -> dict[str, Any]:
        return {"layer": self.layer, "head": self.head, "row": self.row, "site": self.site,
                "sweep": self.sweep_select.value, "action": ACTIONS[self.action.value], "scale": self.scale.value,
                "method": METHODS[self.method.value], "step": self.step}  # fmt: skip

    @property
    def panels(self) -> dict[str, W.Widget]:
        return {"patching": self.patch_grid, "intervention": self.change,
                "attribution": self.attribution_fig, "logit_lens": self.lens_fig}  # fmt: skip

    def select_head(self, layer: int, head: int) -> None:
        """Pick the head the Intervene tab ablates or patches (as a click on the grid does)."""
        n_layers, n_heads = self._head_shape()
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise ValueError(f"(layer, head)=({layer}, {head}) is outside {n_layers}×{n_heads}")
        with self._lock:
            self.layer, self.head = int(layer), int(head)
            self._syncing = True
            try:
                self.head_grid.selected = self.layer * n_heads + self.head
            finally:
                self._syncing = False
            self._effect = None
            self._redraw("intervention")

    def select_site(
        self, layer: int, *, head: int | None = None, position: int | None = None
    ) -> None:
        """Pick a site of the patching map (as a click on a cell does); the output change of
        that one patch is shown next to the map."""
        frame = self.patching
        hit = frame[frame.layer == layer]
        for col, v in (("head", head), ("position", position)):
            if col in frame:
                if v is None:
                    raise ValueError(f"this patching map is by {frame.attrs['by']}: give {col}=")
                hit = hit[hit[col] == v]
        if hit.empty:
            raise ValueError(f"no site layer={layer}, head={head}, position={position} in the map")
        with self._lock:
            self.site = {"layer": int(layer), "head": head, "position": position}
            self._mark_site()
            self._draw_site_change()

    def set_row(self, row: int) -> None:
        """Show input row ``row`` in the output, attribution and lens views."""
        n = batch_size(self._clean)
        if not 0 <= row < n:
            raise ValueError(f"row={row} is outside 0..{n - 1}")
        with self._lock:
            self.row = int(row)
            self._syncing = True
            try:
                self.row_select.value = self.row
            finally:
                self._syncing = False
            self._effect = self._attribution = self._lens = None
            self._draw_heads()
            self._draw_tab()

    def _on_row(self, change: Any) -> None:
        if not self._syncing and self.model is not None:
            self._guard(lambda: self.set_row(int(change.new)))

    def _on_patch_cell(self, change: Any) -> None:
        if self._syncing or not change.new or self._sweep is None:
            return
        r, c = (int(v) for v in change.new)
        by = self._sweep.attrs["by"]
        if by == "position":
            kw: dict[str, Any] = {"position": c}
        elif by == "head":
            kw = {"head": c}
        else:
            n_heads = int(self._sweep["head"].max()) + 1
            r, h = divmod(r, n_heads)
            kw = {"head": h, "position": c}
        self._guard(lambda: self.select_site(r, **kw))

    def _on_action(self, change: Any) -> None:
        self.scale.layout.display = "" if ACTIONS[change.new] == "steer" else "none"
        self._redraw("intervention", reset=True)

    def _on_head_tile(self, change: Any) -> None:
        if not self._syncing and change.new >= 0 and self.model is not None:
            self._guard(lambda: self.select_head(*divmod(int(change.new), self._head_shape()[1])))

    # ------------------------------------------------------------ compute (cached per model)

    def _require_model(self) -> torch.nn.Module:
        if self.model is None:
            raise RuntimeError("no model yet: give source= (or call follow)")
        return self.model

    @property
    def patching(self) -> pd.DataFrame:
        """The patching sweep of the chosen sites (tidy; see ``iv.patching_sweep``)."""
        if self._sweep is None:
            model = self._require_model()
            site, by = SWEEPS[self.sweep_select.value]
            with self.busy(f"patching every {by.replace('_', ' × ')} of {site}…"):
                self._sweep = iv.patching_sweep(
                    model, self._clean, self._corrupted, site, by=by, metric=self.metric,
                    **self._read_args,
                )  # fmt: skip
        return self._sweep

    def _intervention(self, model: torch.nn.Module) -> tuple[iv.Intervention, Any]:
        """The Intervene tab's edit and the inputs it runs on."""
        name = f"blocks.{self.layer}.attn.hook_z"
        action = ACTIONS[self.action.value]
        if action == "patch":
            source = iv.run_with_hooks(model, self._clean, cache=name)[name]
            return iv.Patch(name, source, head=self.head), self._corrupted
        if action == "steer":  # the head's mean output on clean minus on corrupted
            v = iv.steering_vector(model, self._clean, self._corrupted, name, head=self.head)
            return iv.Steering(name, v, self.scale.value, head=self.head), self._corrupted
        ablation = iv.Ablation(name, action, head=self.head)
        if action != "zero":
            ablation.fit(model, self._clean)
        return ablation, self._clean

    def _probabilities(self, output: Any) -> np.ndarray:
        logits = iv.logits_of(output)[self.row]
        if logits.ndim == 2:
            logits = logits[int(self._display_pos[self.row]) % logits.shape[0]]
        return torch.softmax(logits.float(), -1).detach().numpy()

    @property
    def effect(self) -> pd.DataFrame:
        """The Intervene tab's result: ``run`` (before/after), ``metric``, ``value`` (mean over
        the inputs), and the shown row's next-token probabilities (``token``, ``probability``)."""
        if self._effect is None:
            model = self._require_model()
            edit, inputs = self._intervention(model)
            read = iv.metric_fn(self.metric, **self._read_args)
            with self.busy(f"{self._what()}…"), torch.no_grad():
                before = iv.run_with_hooks(model, inputs).output
                after = iv.run_with_hooks(model, inputs, [edit]).output
            rows = []
            labels = self._tokens(range(iv.logits_of(before).shape[-1]))
            for run, out in (("before", before), ("after", after)):
                probs = self._probabilities(out)
                rows += [{"run": run, "metric": self.metric, "value": float(read(out).mean()),
                          "token": labels[i], "probability": float(p)} for i, p in enumerate(probs)]  # fmt: skip
            self._effect = pd.DataFrame(rows)
        return self._effect

    @property
    def attribution(self) -> iv.Attribution:
        """Attribution of the shown row's read-out to its input tokens (Captum)."""
        if self._attribution is None:
            model = self._require_model()
            method = METHODS[self.method.value]
            args = self._read_args
            one = {k: (v[self.row : self.row + 1] if isinstance(v, torch.Tensor) and v.ndim else v)
                   for k, v in args.items()}  # fmt: skip
            read = iv.metric_fn(self.metric, **one)
            x = map_batch(self._clean, lambda t: t[self.row : self.row + 1])
            with self.busy(f"{self.method.value} through Captum…"):
                self._attribution = iv.attribute(model, x, target=read, method=method)
        return self._attribution

    @property
    def lens(self) -> pd.DataFrame:
        """The logit lens of the shown row (tidy; see ``iv.logit_lens``)."""
        if self._lens is None:
            model = self._require_model()
            ids = self._token_ids(self._clean)[self.row]
            target = torch.cat([ids[1:], ids[-1:]])  # the next token at each position
            vocab = self._vocab or (
                getattr(getattr(self._source, "task", None), "meta", None) or {}
            ).get("vocab")
            x = map_batch(self._clean, lambda t: t[self.row : self.row + 1])
            with self.busy("reading every layer through the unembedding…"):
                self._lens = iv.logit_lens(model, x, target=target, vocab=vocab, top_k=3)
        return self._lens

    # ------------------------------------------------------------ drawing

    def _head_shape(self) -> tuple[int, int]:
        shape = self.head_grid.shape
        n_heads = int(self.head_grid.columns or 1)
        return (int(shape[0]) // n_heads if shape[0] else 0), n_heads

    def _step_note(self) -> str:
        return "" if self.step is None else f" — step {self.step}"

    def _draw_heads(self) -> None:
        model = self._require_model()
        x = map_batch(self._clean, lambda t: t[self.row : self.row + 1])
        cache = capture(model, x, ["blocks.*.attn.hook_pattern"], dtype=torch.float32)
        names = sorted(cache.keys(), key=lambda k: int(k.split(".")[1]))
        if not names:
            raise ValueError(f"{type(model).__name__} has no attention patterns to pick heads from")
        maps = torch.stack([cache[k][0] for k in names]).numpy()  # (L, H, T, T)
        n_layers, n_heads, t, _ = maps.shape
        self.layer, self.head = min(self.layer, n_layers - 1), min(self.head, n_heads - 1)
        self._syncing = True
        try:
            self.head_grid.show(
                maps.reshape(n_layers * n_heads, t, t),
                [f"L{a} H{b}" for a in range(n_layers) for b in range(n_heads)],
                vmin=0.0, vmax=float(maps.max()) or 1.0, columns=n_heads,
                tile_px=int(np.clip(480 // n_heads - 10, 32, 96)),
                selected=self.layer * n_heads + self.head,
                caption=f"attention of input {self.row}{self._step_note()}: click a head to "
                        "ablate, patch or steer it",
            )  # fmt: skip
        finally:
            self._syncing = False

    def _redraw(self, view: str, *, reset: bool = False) -> None:
        if self.model is None:
            return
        if reset:
            if view == "patching":
                self._sweep, self.site = None, None
            elif view == "intervention":
                self._effect = None
            elif view == "attribution":
                self._attribution = None
        if self._current_view() == view:
            self._guard(self._draw_tab)

    def _draw_tab(self) -> None:
        if self.model is None:
            return
        view = self._current_view()
        if view not in self.views:
            self._set_status(f"{type(self.model).__name__} has no unembedding: no logit lens")
            return
        if view == "patching":
            self._draw_patching()
        elif view == "intervention":
            self._draw_effect()
        elif view == "attribution":
            _replace(self.attribution_fig, self._figure("attribution"))
            self._set_status(self._attribution_note())
        else:
            _replace(self.lens_fig, self._figure("logit_lens"))
            self._set_status(f"logit lens of input {self.row}: the top next token read after "
                             f"every block{self._step_note()}")  # fmt: skip

    def _metric_label(self) -> str:
        return _METRIC_LABELS.get(self.metric, self.metric)

    def _draw_patching(self) -> None:
        frame = self.patching
        by = frame.attrs["by"]
        col = "head" if by == "head" else "position"
        if by == "head_position":
            frame = frame.assign(row=frame.layer * (frame["head"].max() + 1) + frame["head"])
            rows = [
                f"L{a} H{b}" for a, b in frame.drop_duplicates("row")[["layer", "head"]].to_numpy()
            ]
        else:
            frame = frame.assign(row=frame.layer)
            rows = [f"layer {a}" for a in sorted(frame.layer.unique())]
        z = frame.pivot_table(index="row", columns=col, values="restored", aggfunc="first")
        values = z.to_numpy(dtype=np.float64)
        finite = np.abs(values[np.isfinite(values)])
        bound = max(1.0, float(finite.max()) if finite.size else 1.0)
        ids = self._token_ids(self._clean)[self.row].tolist()
        cols = self._tokens(ids) if col == "position" else [f"H{h}" for h in z.columns]
        if col == "position":
            cols = [f"{i}: {t}" for i, t in enumerate(cols)]
        a, b = frame.attrs["clean"], frame.attrs["corrupted"]
        self._syncing = True
        try:
            self.patch_grid.show(
                values, [f"patching {SWEEPS[self.sweep_select.value][0]}{self._step_note()}"],
                vmin=-bound, vmax=bound, row_labels=rows, col_labels=cols, show_labels=True,
                x_title="position (tokens of input " f"{self.row})" if col == "position" else "head",
                y_title="layer, head" if by == "head_position" else "layer",
                show_values=values.size <= 120, clicked_cell=[],
                caption=f"share of the clean − corrupted {self._metric_label()} gap restored "
                        f"(clean {a:.3g}, corrupted {b:.3g}; {frame.attrs['forwards']} forward "
                        "passes); click a cell",
            )  # fmt: skip
        finally:
            self._syncing = False
        self._set_status(
            f"{self._metric_label()}: clean {a:.3g}, corrupted {b:.3g} "
            f"(mean over {batch_size(self._clean)} inputs){self._step_note()}"
            + self._corruption_note()
            + (" · clean and corrupted read the same: nothing to restore; give corrupted=..."
               if a == b else "")
        )  # fmt: skip
        if self.site is None:
            best = (
                frame.loc[frame.restored.abs().idxmax()]
                if np.isfinite(values).any()
                else frame.iloc[0]
            )
            self.site = {
                k: (int(best[k]) if k in best else None) for k in ("layer", "head", "position")
            }
        self._mark_site()
        self._draw_site_change()

    def _mark_site(self) -> None:
        frame, site = self._sweep, self.site
        if frame is None or site is None:
            return
        by = frame.attrs["by"]
        if by == "position":
            cell = [site["layer"], site["position"]]
        elif by == "head":
            cell = [site["layer"], site["head"]]
        else:
            cell = [site["layer"] * (int(frame["head"].max()) + 1) + site["head"], site["position"]]
        self._syncing = True
        try:
            self.patch_grid.clicked_cell = [int(c) for c in cell]
        finally:
            self._syncing = False

    def _site_outputs(self) -> tuple[np.ndarray, np.ndarray, list[str], str]:
        model = self._require_model()
        assert self.site is not None and self._sweep is not None
        name = str(self._sweep[self._sweep.layer == self.site["layer"]].site.iloc[0])
        out = iv.patch(model, self._clean, self._corrupted, name, head=self.site["head"],
                       position=self.site["position"])  # fmt: skip
        with torch.no_grad():
            base = iv.run_with_hooks(model, self._corrupted).output
        where = ", ".join(f"{k} {v}" for k, v in self.site.items() if v is not None)
        labels = self._tokens(range(iv.logits_of(base).shape[-1]))
        return self._probabilities(base), self._probabilities(out), labels, where

    def _draw_site_change(self) -> None:
        _replace(self.site_change, self._site_figure())

    def _site_figure(self) -> go.Figure:
        before, after, labels, where = self._site_outputs()
        return figs.output_change_figure(
            before, after, labels, top=8, names=("corrupted", f"patched at {where}"),
            title=f"input {self.row}: next token with {where} patched from clean",
        )  # fmt: skip

    def _corruption_note(self) -> str:
        if self._given["corrupted"] is not None:
            return ""
        return " · corrupted = the clean inputs shifted by one row (give corrupted= for pairs)"

    def _what(self) -> str:
        """The Intervene tab's action in words."""
        head = f"L{self.layer} H{self.head}"
        if ACTIONS[self.action.value] == "steer":
            return f"steering {head} to clean (×{self.scale.value:g})"
        return f"{self.action.value} of {head}"

    def _draw_effect(self) -> None:
        eff = self.effect
        v = eff.drop_duplicates("run").set_index("run").value
        what = self._what()
        self.effect_html.value = (
            f"<b>{html.escape(what)}</b>: {html.escape(self._metric_label())} "
            f"{v['before']:.3g} → {v['after']:.3g} (mean over {batch_size(self._clean)} inputs)"
        )
        _replace(self.change, self._figure("intervention"))
        on_corrupted = ACTIONS[self.action.value] in ("patch", "steer")
        self._set_status(f"{what}: {self._metric_label()} {v['before']:.3g} → {v['after']:.3g}"
                         f"{self._step_note()}{self._corruption_note() if on_corrupted else ''}")  # fmt: skip

    def _attribution_note(self) -> str:
        a = self.attribution
        err = a.completeness()[0]
        done = (
            ""
            if np.isnan(err)
            else f"; completeness error {err:.2%} (Σ attributions vs F(x) − F(baseline))"
        )
        return f"{self.method.value} of the {self._metric_label()} of input {self.row}{done}"

    # ------------------------------------------------------------ protocol

    def _available_views(self) -> list[str]:
        if self.model is None:
            return []
        try:
            iv.unembedding(self.model)
        except ValueError:
            return [v for v in VIEWS if v != "logit_lens"]
        return list(VIEWS)

    def _current_view(self) -> str:
        return VIEWS[self.tabs.selected_index or 0]

    def _figure(self, view: str) -> go.Figure:
        if view == "patching":
            frame = self.patching
            ids = self._token_ids(self._clean)[self.row].tolist()
            sel = (
                None if self.site is None else {k: v for k, v in self.site.items() if v is not None}
            )
            return figs.patching_figure(
                frame, tokens=self._tokens(ids), selected=sel,
                title=f"patching {SWEEPS[self.sweep_select.value][0]}{self._step_note()}",
            )  # fmt: skip
        if view == "intervention":
            eff = self.effect
            before = eff[eff.run == "before"].probability.to_numpy()
            after = eff[eff.run == "after"].probability.to_numpy()
            return figs.output_change_figure(
                before, after, eff[eff.run == "before"].token.tolist(), top=8,
                names=("before", "after"), title=f"input {self.row}: {self._what()}",
            )  # fmt: skip
        if view == "attribution":
            a = self.attribution
            tokens = self._tokens(self._token_ids(self._clean)[self.row].tolist())
            return figs.attribution_tokens_figure(
                tokens, a.values[0], per_line=min(16, len(tokens)), label=self.method.value,
                title=f"{self.method.value}: {self._metric_label()} of input {self.row}",
            )  # fmt: skip
        frame = self.lens
        return figs.logit_lens_figure(frame, color=self.lens_color.value,
                                      title=f"logit lens, input {self.row}{self._step_note()}")  # fmt: skip

    def _frame(self, view: str) -> pd.DataFrame:
        if view == "patching":
            return self.patching
        if view == "intervention":
            return self.effect
        if view == "attribution":
            return self.attribution.frame()
        return self.lens
