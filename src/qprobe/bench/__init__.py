"""The Vista-style benchmark builder (DESIGN §2.1).

Pristine high-resolution photos become a benchmark of *localized*
degradations with exact ground truth:

* :mod:`qprobe.bench.wavelet` — structure/texture split (2-level 2-D DWT);
* :mod:`qprobe.bench.regions` — texture-rich region selection;
* :mod:`qprobe.bench.degradations` — one registered module per family;
* :mod:`qprobe.bench.inject` — local injection through feathered masks;
* :mod:`qprobe.bench.dof` — synthetic depth-of-field hard negatives;
* :mod:`qprobe.bench.labels` / :mod:`qprobe.bench.pairs` — proxy MOS and ranking pairs;
* :mod:`qprobe.bench.builder` — the resumable, deterministic, parallel build;
* :mod:`qprobe.bench.sheet` — a contact sheet for people to look at.

Importing this package is cheap; submodules load on use.
"""
