"""The code file of facesr's MLflow models ("models from code").

`facesr.mlflow_model.log_generator` copies this file into every model it logs, and
`mlflow.pyfunc.load_model` runs it to get the model object. It only names the class: the class,
and the weights-only reading of the generator file, live in the installed facesr package.
"""

import mlflow

from facesr.mlflow_model import GeneratorModel

mlflow.models.set_model(GeneratorModel())
