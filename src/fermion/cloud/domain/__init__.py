"""Rules of the cloud as pure Python: permissions, repair planning, key policy."""
