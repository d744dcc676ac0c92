"""The TF-Addons oracle lane (TF 2.15 virtualenv, `make test-oracle`); not collected by `make test`."""
