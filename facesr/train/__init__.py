"""Training: the content-loss and GAN loops, resumable checkpoints, Ray Tune trials, MLflow tracking.

    loops.py       train_content (SRResNet, Method 1), train_gan (Method 2)
    checkpoint.py  atomic, weights_only checkpoints with every RNG/optimizer/scheduler state
    data.py        batches as a pure function of (seed, step), flips that swap l_/r_ parsing channels
    trials.py      Ray Tune: variants x search grid, resources, retries, best trial per variant
    tracking.py    MLflow parent/nested runs, tags, model logging and registration
    driver.py      what stages/train.py and stages/train_gan.py share

See docs/training.md.
"""
