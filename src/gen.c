typedef int xt_placeholder_gen; /* replaced by the module's implementation */
