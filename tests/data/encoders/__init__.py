"""The encoder lane (`make test-encoders`): extract with the real offline models of requirements-dataprep.txt."""
