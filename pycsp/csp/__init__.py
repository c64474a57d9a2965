"""CSP notation front end (Hydra cspexec); see pycsp/csp/__init__ later."""
