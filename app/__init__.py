"""auditloop's interfaces: the Streamlit app and the ``auditloop`` command line."""
