typedef int xt_placeholder_convert; /* replaced by the module's implementation */
