"""Training data in the kit's record format (see minirlvr/data.py), for real models.

  build.py           the paper's hard-only / soft-only / mixed splits built from seed tasks (`data build`)
  convert.py         readers for public IF datasets (IFEval-style, RLVR-IFeval, VerInstruct) (`data convert`)
  soft_catalogue.py  the soft constraints `data build` adds to seed tasks
"""
