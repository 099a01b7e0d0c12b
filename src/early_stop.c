typedef int xt_placeholder_early_stop; /* replaced by the module's implementation */
