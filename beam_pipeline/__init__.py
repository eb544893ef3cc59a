import sys as _sys

# `python -m beam_pipeline.<command>` imports Beam before its main block runs:
# silence third-party import chatter here, for that case only (see quiet.py).
if "-m" in getattr(_sys, "orig_argv", ()):
    _argv = list(_sys.orig_argv)
    _module = _argv[_argv.index("-m") + 1] if _argv.index("-m") + 1 < len(_argv) else ""
    if _module.startswith("beam_pipeline.") and _module != "beam_pipeline.quiet":
        from beam_pipeline.quiet import quiet_third_party

        quiet_third_party()
