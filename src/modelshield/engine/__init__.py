"""The scanning core: blobs, identification, dispatch, limits and the vocabulary of findings."""
