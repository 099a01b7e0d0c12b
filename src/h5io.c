typedef int xt_placeholder_h5io; /* replaced by the module's implementation */
