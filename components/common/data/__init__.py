"""Reading, validating and accounting for the datasets users bring (see `formats` for the layouts).

`preparation.prepare_preferences` / `prepare_prompts` turn a dataset (and an optional eval dataset)
into canonical train/eval examples with books that balance; `report.render_report` describes them.
"""
