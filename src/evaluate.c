typedef int xt_placeholder_evaluate; /* replaced by the module's implementation */
