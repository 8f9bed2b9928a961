"""Training: one loop for the content and GAN trials, resumable checkpoints, Ray Tune trials, MLflow.

    config.py      typed, frozen configs of the train/train_gan sections, parsed once at the stage
    loop.py        the training loop (a content step and a GAN step) and its export
    validate.py    validation, sample grids, curves
    checkpoint.py  run identity; weights_only checkpoints (last + previous) with every RNG/optimizer state
    data.py        batches as a pure function of (seed, step), flips that swap l_/r_ parsing channels
    trials.py      Ray Tune: one trainable per trial, retries, typed results, best trial per variant
                   (a trial of N > 1 workers: a Ray Train TorchTrainer of N DDP workers)
    distributed.py what the loop needs as one of N workers: DDP, global-batch BatchNorm, rank 0's checkpoint
    tracking.py    MLflow parent/nested runs, tags, model logging and registration
    driver.py      what stages/train.py and stages/train_gan.py share

See docs/training.md.
"""
