"""DVC entry points: one module per dvc.yaml stage, each a pure `run(params, *, <paths>, smoke_test,
source) -> summary`; stages._cli makes its command line, flows.stage its Prefect flow."""
