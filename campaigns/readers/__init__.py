"""One reader per document format, each turning a file's text into neutral `Block`s."""
