"""MJML layouts and partials (Jinja inside), plain-text templates, web page templates. Data only."""
