"""Paper experiments: schedules over streams, written against the :class:`Backend` protocol."""
