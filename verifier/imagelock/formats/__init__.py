"""The file formats, as pydantic models: the JSON Schemas in spec/schema/ are generated from them."""
