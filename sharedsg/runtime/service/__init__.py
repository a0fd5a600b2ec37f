"""The SG service: the registry of an experiment (:mod:`.registry`), its SG group actors
(:mod:`.server`), a stream's client of a group (:mod:`.client`) and the Ray SG endpoint over it
(:mod:`.endpoint`), checkpoints (:mod:`.checkpoint`), and a plain model's way in (:mod:`.link`)."""
