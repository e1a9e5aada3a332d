"""Imported by the kernel fork server (:mod:`evaluation.kernels`) after :mod:`evaluation.api`.

The modules every evaluation notebook imports on first use (whatever its design), so that
no forked kernel pays for them; each design's own modules come with its workflow module
(:func:`evaluation.kernels.preload`), e.g. statsmodels with the ITS designs only. Only imports: no data is read and nothing is
computed, so forked kernels start from a clean state.
"""

import os

import IPython.display  # noqa: F401  - api.show
import matplotlib.backends.backend_agg  # noqa: F401  - the first savefig
import PIL.Image
import pyarrow
import pyarrow.pandas_compat  # noqa: F401  - DuckDB results to pandas

import evaluation.data.default  # noqa: F401  - the default database's check
import evaluation.report.evidence  # noqa: F401  - every results object is rated

PIL.Image.init()  # registers the image plugins that the first PNG would load

# Arrow sizes its thread pool from OMP_NUM_THREADS, which _kernel_env set to 1 for BLAS;
# reading a CSV is the one step where every core helps, so Arrow gets them back.
pyarrow.set_cpu_count(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
