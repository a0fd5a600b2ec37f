"""The ray-free harness that both :mod:`sharedsg.experiments` and :mod:`sharedsg.runtime` use.

- :mod:`.stream`: ``Stream`` (one NMN stream: learner, data, SG group, and its SG exchange,
  ``Stream.train``) and the one place a stream's seed, batch size and SG group are decided;
- :mod:`.endpoint`: ``SGEndpoint``, the verbs of a stream's side of the SG exchange, ``ExchangeRule`` (when a step
  calls which verb; streams and the public API alike), and
  ``LocalEndpoint`` (an SG group in this process);
- :mod:`.backend`: the ``Backend`` protocol and ``LocalBackend`` (streams and SG groups in this
  process); ``sharedsg.runtime.hosting.backend.RayBackend`` is the same protocol on Ray actors;
- :mod:`.loop`: the train loop (schedules, evaluations, TensorBoard) of ``run`` and ``attach``;
- :mod:`.schedule`: which streams train at which iteration;
- :mod:`.launcher`: what an experiment runs on (a backend factory and a job map);
- :mod:`.jobs`: independent resumable jobs and their sweep in this process;
- :mod:`.runlog`: TensorBoard writers and atomic ``results.json``.
"""
