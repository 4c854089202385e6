"""nbconvert settings for this workflow's notebook rules (docs/rule-kinds.md).

Snakemake runs a `notebook:` rule as `jupyter-nbconvert --execute --to notebook --output <log notebook>`.
When a cell fails, nbconvert stops and writes nothing, so the rule's `log: notebook=` would be an empty
file. With this file, nbconvert first writes the notebook executed so far (the failing cell with its
error included, the later cells not run) where it would have written the whole one, then fails as
before: the job fails and none of its outputs reaches results/.

jupyter-nbconvert reads this file because contract.smk puts this folder first on JUPYTER_CONFIG_PATH
(an absolute path, so also in a shadow directory and in a cluster job). It changes only `--execute`
runs with `--to notebook`, and only what happens after a cell failed.

From the Snakemake repository template, release {{ cookiecutter._template_version }}.
"""

from nbconvert.exporters import NotebookExporter
from nbconvert.nbconvertapp import NbConvertApp
from nbconvert.preprocessors import ExecutePreprocessor


class ExecuteKeepingTheFailedNotebook(ExecutePreprocessor):
    """nbconvert's ExecutePreprocessor, with its settings (--execute, timeout, ...); on a failure (a cell's
    error, a timeout, a dead kernel) it writes the notebook executed so far, then raises the failure."""

    def preprocess(self, nb, resources=None, km=None):
        try:
            return super().preprocess(nb, resources, km)
        except Exception:
            self.write_what_ran(resources)
            raise

    def write_what_ran(self, resources):
        if not NbConvertApp.initialized():
            return
        app = NbConvertApp.instance()
        self.enabled = False  # export what ran as nbconvert would have, without running it again
        try:
            output, resources = app.exporter.from_notebook_node(self.nb, resources)
            app.write_single_notebook(output, resources)
        except Exception as error:  # the failure itself is what matters: it is raised next
            self.log.error("could not write the notebook executed up to the failure: %s", error)


c = get_config()  # noqa: F821 - provided by Jupyter when it reads this file
c.NotebookExporter.default_preprocessors = [
    ExecuteKeepingTheFailedNotebook if name == "nbconvert.preprocessors.ExecutePreprocessor" else name
    for name in NotebookExporter.class_traits()["default_preprocessors"].default()
]
