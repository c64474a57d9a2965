"""pycsp.net: running beyond one machine (issue #16), being built.

So far only its launchers (``_launch``: ssh and srun with secrets on stdin) and
placement (``_placement``: Slurm host lists, PBS nodefiles, PyCSP 0.9.2's
cluster hints) are here; channels across programs come next.
"""
