"""The diffusion core: noise schedules, the MDLM objective and samplers.

Modality-agnostic: it sees token ids, a mask id and the ids that may be generated, never an
alphabet.
"""
