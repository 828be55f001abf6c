"""Checkpoint schedule, atomic save/load, sha256, the SQLite catalog, the hub table.

```python
from checkpoints_index.schedule import checkpoint_steps  # "pythia", "log+every:K", "steps:0,5"
from checkpoints_index.store import save_checkpoint, load_checkpoint, checkpoint_dir
from checkpoints_index.catalog import Catalog                 # RUN/catalog.sqlite
from checkpoints_index.hub import hf_from_pretrained_args, warnings_for
```

This package imports neither `pythia_suite` nor `dataloader_replay`.
"""
