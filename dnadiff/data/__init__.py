"""Data ingestion: reference genomes, FASTA/GenBank reading, token arrays, windows."""
