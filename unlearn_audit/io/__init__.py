"""Everything that touches files: checkpoints, sample sets, datasets on disk, hashes."""
