"""Pure figure builders: analysis result → plotly Figure, one module per lens.

Every view a panel shows can be rebuilt here without a browser, so it can be tested, scripted
and exported.
"""
