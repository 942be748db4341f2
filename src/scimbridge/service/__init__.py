"""Use cases: each public function or method is one transaction on the store."""
