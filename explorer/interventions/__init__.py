"""Touch a model to test what it computes: ablate, patch, steer; attribute outputs to inputs;
read the residual stream through the unembedding (logit lens).

    from explorer import interventions as iv
    out = iv.ablate(model, tokens, "blocks.1.attn.hook_z", head=0, method="mean")
    effect = iv.patching_sweep(model, clean, corrupted, "resid_pre", answer=a, wrong=b)
    result = iv.attribute(model, tokens, target=answer, method="integrated_gradients")
    lens = iv.logit_lens(model, tokens, target=answer)

Works on explorer's models through their hook points and on Hugging Face models (loaded with
:func:`explorer.models.load_pretrained`) through forward hooks on the real modules, with the same
site names. Hooks are removed in ``finally``. Compute only: figures live in
``widgets.figures.probe``.
"""

from __future__ import annotations

from explorer.interventions.ablate import ABLATIONS, Ablation, ablate
from explorer.interventions.attribution import ATTRIBUTIONS, Attribution, attribute
from explorer.interventions.lens import (
    TunedLens,
    lens_divergence,
    logit_lens,
    residual_stream,
    unembedding,
)
from explorer.interventions.metrics import METRICS, logits_of, metric_fn
from explorer.interventions.patch import Patch, patch, patching_sweep
from explorer.interventions.run import Intervention, hooked, run_with_hooks
from explorer.interventions.sites import SITE_TEMPLATES, Site, resolve_site, site_names
from explorer.interventions.steer import Steering, steer, steering_vector

__all__ = [
    "ABLATIONS",
    "ATTRIBUTIONS",
    "METRICS",
    "SITE_TEMPLATES",
    "Ablation",
    "Attribution",
    "Intervention",
    "Patch",
    "Site",
    "Steering",
    "TunedLens",
    "ablate",
    "attribute",
    "hooked",
    "lens_divergence",
    "logit_lens",
    "logits_of",
    "metric_fn",
    "patch",
    "patching_sweep",
    "residual_stream",
    "resolve_site",
    "run_with_hooks",
    "site_names",
    "steer",
    "steering_vector",
    "unembedding",
]
