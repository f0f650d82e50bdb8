"""HTTP concerns shared by the API: response headers, attachments and file delivery."""
