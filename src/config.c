typedef int xt_placeholder_config; /* replaced by the module's implementation */
