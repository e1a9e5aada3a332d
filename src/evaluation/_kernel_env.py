"""Imported first by the kernel fork server (:mod:`evaluation.kernels`), before NumPy.

Forked kernels share the cores with each other (a batch runs one per core), so each gets
one BLAS/OpenMP thread: multi-threaded BLAS in every kernel would only thrash. The thread
count is fixed when NumPy's BLAS loads, hence this module's place at the head of the
preload list. Importing it anywhere else would change that process's BLAS threads.
"""

import os

from evaluation.config import SINGLE_THREAD_ENV  # config imports no NumPy

os.environ.update(SINGLE_THREAD_ENV)
# The debugger ipykernel loads warns on stderr that Python's frozen modules may hide
# breakpoints; nobody debugs a batch kernel, and the warning would reach the terminal.
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
