typedef int xt_placeholder_metrics; /* replaced by the module's implementation */
