typedef int xt_placeholder_train; /* replaced by the module's implementation */
