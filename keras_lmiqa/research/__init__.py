"""The research workflow: scoring a dataset, the repeated-split protocol, cross-dataset
matrices, ablations, tables, run reports and single-image explanations.

One module per concern; each CLI command in `keras_lmiqa.cli` is a thin layer over one
of them. Nothing here is imported by the training or serving code paths except
`report.write_report`, which `lmiqa train` and the protocol call once a run is finished.
"""
