"""Sample corpus: real portraits and real speech animated with known motion (issue 2)."""
