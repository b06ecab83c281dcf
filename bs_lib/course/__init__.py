"""The course's own tooling: the top floor of ``bs_lib``, built on the science below it and imported by none of it.

* ``survey``: the paper database (``papers/``): its schema and checker, the
  generated index and figures, and the ``papers`` command;
* ``listing``: where the course notebooks are, and which of them to run;
* ``notebooks``: the notebook conventions as code (``notebooks check``), a new
  notebook from the template (``notebooks new``), the repository's address in
  every badge (``notebooks urls``);
* ``report``: every notebook executed with papermill into ``reports/``;
* ``stress``: every notebook under several seeds and thread counts
  (``notebooks stress``);
* ``site``: the executed notebooks as a static web site, with the course map
  as its home page.

The science (``phantom``, ``datasets``, ``metrics``, the models, ...) never
imports from here; the notebooks import it only for the survey.
"""
