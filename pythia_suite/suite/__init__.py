"""`pythia-suite run`: the whole suite as one reproducible experiment into `runs/<name>/`.

`config` validates the YAML suite config into dataclasses (presets in `presets`); `stages`
builds the stage graph (corpus, dedup, tokenizer, prepare, train, verify, studies, report);
`runner` runs it with skip-if-done; `report` writes the self-contained HTML page.
"""
