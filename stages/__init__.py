"""DVC entry points: one module per dvc.yaml stage, each a pure `run(params, *, paths..., smoke_test)`
plus a thin `main()` that reads its own params.yaml section and takes every path from the command line."""
