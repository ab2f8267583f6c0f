"""Everything that touches OUTPUT: files and journal, resume ledger, records, manifest, sweep."""
