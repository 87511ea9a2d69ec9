"""The exercise notebooks hold stubs that raise NotImplementedError until a learner fills them in,
so nbmake must not execute them: tests/learn/ checks them instead (every stub fails its check,
every solution in sescratch.learn.solutions passes it)."""
collect_ignore_glob = ["*.ipynb"]
