"""Distillation: a few-step VSSFlow student with classifier-free guidance folded in, made from any teacher checkpoint.

Two steps (``python -m vssflow_core distill pairs|train``, see :mod:`.__main__`):

1. :mod:`.pairs` writes (noise, conditions, teacher endpoint) pairs: the teacher's official sampler (dopri5
   atol = rtol = 1e-5, guidance scale 3) run from seeded noise on the conditions of the training feature cache.
   Shards of items, each written atomically, split over ``torchrun`` ranks; a rerun skips finished shards.
2. :mod:`.student` trains a student of the teacher's architecture, initialised from it, by rectified-flow reflow on
   those pairs (straight paths from the teacher's noise -> endpoint coupling), with the guidance folded in
   (:class:`~.student.FoldedGuidance`).  The student is an ordinary VSSFlow checkpoint whose metadata recommends its
   sampler (a few fixed steps at guidance scale 1: one network pass per evaluation).
"""
