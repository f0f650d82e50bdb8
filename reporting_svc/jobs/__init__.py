"""The rules of report jobs a request applies: finding, filters, availability, listing."""
