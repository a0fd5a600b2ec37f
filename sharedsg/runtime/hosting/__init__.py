"""Stream hosting: a stream as a Ray actor (:mod:`.stream`), the backend that runs a run's streams
as actors (:mod:`.backend`), where they go (:mod:`.placement`), and stopping actors (:mod:`.actors`)."""
