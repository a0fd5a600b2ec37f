"""Cluster operations: connecting to (or starting) Ray once (:mod:`.connection`), the local Ray of
attachable experiments (:mod:`.local_head`), launching a run (:mod:`.launcher`), and attach /
status / stop of a running experiment (:mod:`.ops`)."""
