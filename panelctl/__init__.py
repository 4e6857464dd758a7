"""panelctl: the panel's command-line client. It talks HTTP to the REST API (/api/v1/) and
nothing else: it imports nothing of the panel and no Django (.importlinter checks it), so it
can be installed alone (`pip install .` installs only this package, with click and PyYAML).

- `cli`: the commands (click); `client`: the HTTP calls and the API's error shape;
  `config`: where the URL and token are kept (0600); `spec`: cluster.yaml, with its secrets
  read from files or environment variables; `kubeconfig`: a safe merge into ~/.kube/config;
  `watch`: following a run to its end.
"""
