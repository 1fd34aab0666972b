#include <stdlib.h>
int main(void){ int n=2000; int *a=malloc(n*sizeof(int)); long s=0;
 for(int i=0;i<n;i++) a[i]=i*7; for(int i=0;i<n;i+=3) s+=a[(i*37)%n]; free(a); return (int)(s&1); }
