"""DVC entry points: one module per dvc.yaml stage, each a pure `run(<its typed params>, *, <paths>,
smoke_test) -> summary`, its hand-written `parser()` and `main()`; flows/<name>.py is its Prefect flow."""
