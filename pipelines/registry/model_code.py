"""The file MLflow logs as the thpad model ("models from code"): ``publish.log_bundle_model`` passes this file's path
as ``python_model``. MLflow runs it at log time and again at load time under a random module name, so it holds only
absolute imports and this one call; the model itself lives in ``thpad.pipelines.registry.pyfunc``, which travels in
the model's ``code/thpad`` folder.

Importing it as a module also hands MLflow the instance (``set_model`` records it for the next from-code load), which
is harmless anywhere else: nothing is loaded until MLflow calls ``load_context``.
"""

from mlflow.models import set_model

from thpad.pipelines.registry.pyfunc import TalkingHeadPyfunc

set_model(TalkingHeadPyfunc())
