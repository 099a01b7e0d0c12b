typedef int xt_placeholder_dataset; /* replaced by the module's implementation */
