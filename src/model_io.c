typedef int xt_placeholder_model_io; /* replaced by the module's implementation */
